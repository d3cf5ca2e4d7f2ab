"""The nucleus image: intensity normalisation, resampling to the working scale, nucleus size, watershed baselines."""
