"""imageflow: a Dagster asset pipeline that turns form submissions into AI-generated images."""
