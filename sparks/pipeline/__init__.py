"""The one way a request is served: plan the route, open the chain (or run the ghost), and
answer through the responder, which writes the request's one terminal event."""
