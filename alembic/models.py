"""Every module's models, imported in one place so Alembic and the tests see the whole schema.

Import order follows the dependency direction: auth, then study (which owns the sample and file
tables the sampleFileUpload module fills). This directory is not a package (its name is the
alembic library's), so env.py and the tests load this file by path with ``runpy.run_path``.
"""

from src.auth import models as auth_models  # noqa: F401
from src.database import Base
from src.study import models as study_models  # noqa: F401

__all__ = ["Base"]
