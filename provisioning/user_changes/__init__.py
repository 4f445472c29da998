"""Connect users at scale: who to create, update or delete (planned once, stored one row per
person), and the workers that make those changes at the API's quota.

- people.py: a person as the IdP or a list gives them, checked against Connect's and STS's rules.
- instance.py: what the Connect instance holds (profiles, users, the users quota), read in pages.
- planning.py: people against the instance: the change set a plan stores and shows.
- work.py: workers claim changes one at a time and make them, each call through the shared bucket.
- progress.py: how far a change set is, for the run page and the step's outputs.
- steps.py: what a users step's plan/apply/verify/rollback do with all of the above.
"""
