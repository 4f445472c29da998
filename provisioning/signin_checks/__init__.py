"""The checks AWS sign-in makes on a SAML response, shared by the inspector and the sandbox."""
