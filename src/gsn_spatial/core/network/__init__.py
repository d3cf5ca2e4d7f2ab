"""The GeneSegNet network, overlapping-tile inference, the device it runs on and the memory of its passes."""
