"""What answers people between runs: the lookup service (`app.py`: `create_app(config)`, gunicorn's
`serving.wsgi:app`) and the speed layer that keeps their answers fresh (`speed/`: `python -m serving.speed`),
two deployables that share no code beyond `schemas` and `conf` (tests/test_layers.py checks it)."""
