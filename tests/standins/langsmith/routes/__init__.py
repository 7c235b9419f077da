"""The stand-in's HTTP routes, one module per resource, each registered on the app by `register`."""
