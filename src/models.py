"""Every module's models, imported in one place so Alembic and the tests see the whole schema.

Import order follows the dependency direction: auth, then study (which owns the sample and file
tables the sampleFileUpload module fills).
"""

from src.database import Base

__all__ = ["Base"]
