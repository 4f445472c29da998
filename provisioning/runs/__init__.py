"""A setup run's state machine: every move of a run and of its steps, the worker's (runner.py)
and the admin's (admin_moves.py), made through one pair of guarded moves (moves.py); which status
allows what is provisioning/models.py's. chain.py keeps one worker task going on each run."""
