"""What the web app asks of provisioning: the actions it offers an admin, each a function that
changes the database in one transaction and hands any cloud work to a worker."""
