"""The local web app: ``pixloom serve`` (:mod:`pixloom.serve.app`, :mod:`pixloom.serve.server`)."""
