"""The speed layer: between two runs, folds the events people send into the model of the version they are
served, so that their recommendations follow what they just did within a second. Its own deployable (its
dependency extra `speed`, its image, `make speed-layer`, `python -m serving.speed`): numpy and Redis, no Spark,
no Flask; it reads only what the batch published for it (schemas/bundle.py) and the event archive
(schemas/archive.py).

- `consumer.py`: following the live version and experiment, the consumer group, rebuilding, writing;
- `model.py`: one version's fold-in: a person's list from their training preferences and what they did since;
- `metrics.py`: what it exports on --metrics-port.
"""
