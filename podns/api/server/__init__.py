"""The API server process: the aiohttp app and its filters (authentication), certificates, kubeconfigs.

`apiserver.ApiServer` starts and stops it; `httpapp.create_app` builds the middleware chain and
route table that hand every REST URL to `podns.api.handlers`.
"""
