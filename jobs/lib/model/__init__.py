"""The model: evaluation split and folds (`splits`), ALS settings into models (`als`), top-N scoring, neighbours and
popular lists (`scoring`), and the grid search helpers of tune (`grid_search`)."""
