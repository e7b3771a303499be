"""`python -m imdb_sentiment.serving.grpc`: the gRPC front, as `serving.server.Server` starts it."""

from imdb_sentiment.serving.grpc.service import serve
from imdb_sentiment.serving.logs import configure
from imdb_sentiment.serving.service_settings import load_settings

configure(load_settings().service.log_format)
serve()
