"""The HTTP surfaces: the native REST API, the worker and admin consoles, the AWS wire
protocols, and the pages and sessions they share. Nothing outside this package imports it."""
