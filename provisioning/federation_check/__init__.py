"""Checks a federation into Amazon Connect, whoever made it: reads every link (the IdP app, its
claims and relay state, the IAM SAML provider, the roles and policies, the Connect instance and
users) and judges each, read-only."""
