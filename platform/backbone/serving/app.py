"""The Serve application: the gateway bound to the retriever and the reranker.

``serve run`` / ``serve deploy`` import :func:`build_app` (``import_path: backbone.serving.app:build_app``); what
each deployment serves comes from its ``user_config`` in the config file (see ``serve_configs/`` and
:mod:`backbone.serving.serve_config`).
"""

from __future__ import annotations

from typing import cast

from ray.serve import Application, Deployment

from backbone.serving.gateway import Gateway
from backbone.serving.reranker import RerankerDeployment
from backbone.serving.retriever import RetrieverDeployment


def build_app(args: dict[str, str] | None = None) -> Application:
    """The backbone application: ``Gateway(Retriever, Reranker)``.

    Args:
        args: the config file's ``args``; none are read (each deployment's ``user_config`` holds its settings).

    Example:
        >>> serve.run(build_app(), name="backbone")  # doctest: +SKIP
    """
    # @serve.deployment made each class a Deployment; type checkers do not apply class decorators, hence the casts.
    gateway, retriever, reranker = (cast(Deployment, d) for d in (Gateway, RetrieverDeployment, RerankerDeployment))
    return gateway.bind(retriever.bind(), reranker.bind())
