"""Operations on what is deployed: ``dl status`` and ``dl logs``."""
