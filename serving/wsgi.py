"""WSGI entry point for gunicorn: `gunicorn -c serving/gunicorn.conf.py serving.wsgi:app`."""
from serving import create_app

app = create_app()
