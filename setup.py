from setuptools import find_packages, setup

# The production instance (deploy/dagster.yaml): Postgres storage and dagster-celery's run launcher on a
# Redis broker/backend. Integration libraries move in lockstep with dagster==1.13.27 (0.29.27 <-> 1.13.27).
# celery[redis] pulls kombu[redis], whose pins (redis<9, and an exact `packaging`) keep the client compatible.
DEPLOY = [
    "dagster-postgres==0.29.27",
    "psycopg2-binary>=2.9",  # dagster-postgres's driver; local/services.py imports it to create databases
    "SQLAlchemy>=2",  # instance_storage.py catches its OperationalError
    "dagster-celery[redis]==0.29.27",
    "celery[redis]>=5.5,<6",
    "redis>=5",
]

# `imageflow dev`, the embedded local stack: `dg dev` (dagster-dg-cli, in lockstep with dagster) and a moto
# server process (local/moto_process.py: ThreadedMotoServer needs moto's `server` extra: flask, flask-cors).
LOCAL = [
    "dagster-dg-cli==1.13.27",
    "moto[server,dynamodb,s3]==5.2.5",
]

setup(
    name="imageflow-dagster",
    version="0.1.0",
    description="Dagster asset pipeline that turns form submissions into AI-generated images",
    python_requires=">=3.10,<3.15",  # dagster 1.13's own range; tested on 3.10 and 3.13
    packages=find_packages(exclude=["imageflow_dagster_tests*"]),
    package_data={"imageflow_dagster": ["*.json", "demo/*.json", "local/*.json"]},
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-aws==0.29.27",
        "openai>=3.51,<4",
        "pydantic>=2",
        "Pillow>=10",
        "boto3>=1.35",
        "botocore>=1.35",  # imported directly (exceptions, Config); boto3 pins the matching release
        "python-ulid>=2",
        "httpx>=0.27,<1",  # webhook steps (steps/webhook_http.py); arrived only through dagster-dg-cli before
        "tomli>=1.1; python_version < '3.11'",  # cli/dev.py reads pyproject.toml; tomllib is 3.11+
    ],
    extras_require={
        "deploy": DEPLOY,
        "local": LOCAL,
        "dev": [
            *DEPLOY,  # the tests load deploy/dagster.yaml against real Postgres and Redis
            *LOCAL,  # the tests start the local stack, as `make dev` does
            "pytest>=8",
            "pytest-timeout",
            "pytest-xdist",
            "playwright",
        ],
    },
    entry_points={"console_scripts": ["imageflow=imageflow_dagster.cli:main"]},
)
