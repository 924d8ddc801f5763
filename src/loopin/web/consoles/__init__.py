"""The two browser consoles: the worker console (``/worker``) and the admin console (``/admin``)."""
