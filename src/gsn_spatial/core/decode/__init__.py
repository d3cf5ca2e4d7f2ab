"""From the network's maps to cells (the paper's Eq. 4) and from cells to boundary polygons."""
