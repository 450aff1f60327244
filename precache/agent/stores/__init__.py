"""Agent-side ImageStore plugins (entry point namespace ``precache.stores``).

A store decides where an image that the agent downloaded and verified lands
on the compute host. :class:`precache.agent.stores.base.ImageStore` is the
interface third parties write against; the built-in stores are
``nova-libvirt`` (nova-compute's image cache, ``_base``) and ``directory``.
"""
