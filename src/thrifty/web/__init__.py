"""Plain ASGI helpers shared by thrifty's HTTP faces (the gateway and the simulated upstream)."""
