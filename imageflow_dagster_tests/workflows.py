"""Seed-format workflow documents used across the tests."""

from decimal import Decimal


def text_step(name: str, instructions: str, order, depends_on=None, **extra) -> dict:
    step = {"step_name": name, "model": "gpt-5.2", "instructions": instructions, "step_order": order, "tools": []}
    if depends_on is not None:
        step["depends_on"] = depends_on
    return {**step, **extra}


def image_step(name: str, instructions: str, order, depends_on=None, **tool) -> dict:
    step = {
        "step_name": name,
        "model": "gpt-5.2",
        "instructions": instructions,
        "step_order": order,
        "tools": [{"type": "image_generation", **tool}],
        "tool_choice": "auto",
    }
    if depends_on is not None:
        step["depends_on"] = depends_on
    return step


def mixed_workflow(brand_extra: str = "", social_extra: str = "") -> dict:
    """Research (text) -> Brand Images (3 png) ; Research -> Social Images (2 webp). Numbers arrive as the
    seed stores them: ints, numeric strings and DynamoDB Decimals."""
    return {
        "workflow_name": "Brand kit",
        "steps": [
            text_step("Research", "Research the company and summarise its brand voice.", 0, depends_on=[]),
            image_step(
                "Brand Images",
                "Create 3 brand images for the company: logo, banner and icon." + brand_extra,
                Decimal(1),
                depends_on=[Decimal(0)],
                model="gpt-image-2.6-sunburst",
                size="1024x1024",
                quality="low",
                format="png",
                compression=Decimal(85),
                background="opaque",
            ),
            image_step(
                "Social Images",
                "Create 2 social images announcing the brand." + social_extra,
                "2",
                depends_on=["0"],
                model="gpt-image-2.6-sunburst",
                size="1536x1024",
                quality="low",
                format="webp",
                compression=Decimal(80),
            ),
        ],
    }


def single_image_workflow(instructions: str, **tool) -> dict:
    tool = {"model": "gpt-image-2.6-sunburst", "size": "1024x1024", "quality": "low", "format": "png", **tool}
    return {"workflow_name": "One step", "steps": [image_step("Brand Images", instructions, 0, **tool)]}
