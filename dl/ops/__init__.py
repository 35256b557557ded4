"""Operations on what is deployed: what ``dl status`` and ``dl logs`` show (their commands: dl/commands/)."""
