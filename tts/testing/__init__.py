"""Fakes and synthetic results, for tests, the notebook's fallback and benches only.

Why a package of its own: production modules never import it (the layer contract), so a fake can never be
mistaken for the real thing at run time. It may import anything in tts.
"""
