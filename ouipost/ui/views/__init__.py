"""The admin UI's pages, one module per area; each module's `routes` is mounted by ouipost.ui."""
