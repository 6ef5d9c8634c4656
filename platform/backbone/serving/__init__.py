"""Serving a release on Ray Serve: a retriever, a reranker and an HTTP gateway, each upgraded on its own.

- :mod:`~backbone.serving.config`: each deployment's ``user_config`` (what it serves, batching, limits).
- :mod:`~backbone.serving.schemas`: the HTTP API's bodies (OpenAI embeddings, Cohere rerank, search).
- :mod:`~backbone.serving.retriever`, :mod:`~backbone.serving.reranker`: the components, loaded and deployed.
- :mod:`~backbone.serving.gateway`: the FastAPI ingress; :mod:`~backbone.serving.app`: the Serve application.
- :mod:`~backbone.serving.serve_config`: Serve configs from a registry release, built without a cluster;
- :mod:`~backbone.serving.cluster`: a running cluster's Serve application: apply a config, status;
- :mod:`~backbone.serving.deploy`: deploy a release, roll one component back, the history kept true.
"""
