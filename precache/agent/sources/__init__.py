"""Where the agent downloads images from: ``precache.sources`` plugins.

Each entry of ``meta['sources']`` names a ``method``; the plugin of that
name (entry point namespace ``precache.sources``) streams the bytes.
"""
