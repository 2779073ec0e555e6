from setuptools import find_packages, setup

setup(
    name="imageflow-dagster",
    version="0.1.0",
    description="Dagster asset pipeline that turns form submissions into AI-generated images",
    python_requires=">=3.11,<3.12",
    packages=find_packages(exclude=["imageflow_dagster_tests*"]),
    package_data={"imageflow_dagster": ["*.json", "demo/*.json"]},
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
    ],
    extras_require={
        "dev": [
            "moto[dynamodb,s3]==5.2.5",
            "flask",
            "flask-cors",
            "pytest>=8",
            "pytest-timeout",
            "playwright",
        ],
    },
    entry_points={"console_scripts": ["imageflow=imageflow_dagster.cli:main"]},
)
