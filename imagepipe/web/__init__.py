"""HTTP: the site that carries XML-RPC and serves the stored tree."""
