"""The GeneSegNet network, overlapping-tile inference and the device it runs on."""
