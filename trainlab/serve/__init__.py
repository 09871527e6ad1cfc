"""`trainlab serve RUN`: a run's model behind HTTP, for standard inference clients, scripts and people.

model.py (the model and its backend), protocol.py (Open Inference Protocol v2 tensors), app.py (the routes),
server.py (uvicorn on a checked socket), page.html (the page for live tests).
"""
