"""The trained weights that ship with the kit, installed as the package ``models.weights``.

This folder is where they are trained into and committed from; setup.cfg maps it into the
package (``package_dir``), so the wheel carries these very files, found at run time through
``importlib.resources`` (:func:`models.base.shipped_weights`).
"""
