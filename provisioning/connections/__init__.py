"""The admin's cloud connections, engine side: the credentials each sign-in method takes, their
validation, the sign-in test a worker runs, and the sandbox's own connections."""
