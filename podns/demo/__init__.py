"""Small programs the examples run as pods (stdlib plus podns.lb): a replicated key-value store
and a peer-discovery node. They show the headless-service patterns; they are not products."""
