"""Who may do what: admin users and sessions, API keys, workspaces, and the audit log."""
