"""Images: references, registry client, content store, safe layer unpacking, builds and archives."""
