from setuptools import find_packages, setup

# The production instance (deploy/dagster.yaml): Postgres storage and dagster-celery's run launcher on a
# Redis broker/backend. Integration libraries move in lockstep with dagster==1.13.27 (0.29.27 <-> 1.13.27).
# celery[redis] pulls kombu[redis], whose pins (redis<9, and an exact `packaging`) keep the client compatible.
DEPLOY = [
    "dagster-postgres==0.29.27",  # brings psycopg2-binary
    "dagster-celery[redis]==0.29.27",
    "celery[redis]>=5.5,<6",
    "redis>=5",
]

setup(
    name="imageflow-dagster",
    version="0.1.0",
    description="Dagster asset pipeline that turns form submissions into AI-generated images",
    python_requires=">=3.11,<3.12",
    packages=find_packages(exclude=["imageflow_dagster_tests*"]),
    package_data={"imageflow_dagster": ["*.json", "demo/*.json", "local/*.json"]},
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-dg-cli==1.13.27",  # `dg dev` inside `imageflow dev`; in lockstep with dagster
        "dagster-aws==0.29.27",
        "openai>=3.51,<4",
        "pydantic>=2",
        "Pillow>=10",
        "boto3>=1.35",
        "python-ulid>=2",
        "httpx>=0.27,<1",  # webhook steps (steps/webhook_http.py); arrived only through dagster-dg-cli before
    ],
    extras_require={
        "deploy": DEPLOY,
        "dev": [
            *DEPLOY,  # the tests load deploy/dagster.yaml against real Postgres and Redis
            "moto[dynamodb,s3]==5.2.5",
            "flask",
            "flask-cors",
            "pytest>=8",
            "pytest-timeout",
            "pytest-xdist",
            "playwright",
        ],
    },
    entry_points={"console_scripts": ["imageflow=imageflow_dagster.cli:main"]},
)
