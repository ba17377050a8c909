"""Pure ASGI middleware of every mode, one concern a module, installed by `register.install_http_layer`."""
