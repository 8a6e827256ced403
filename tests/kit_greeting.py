"""An application's own workflow, for a plugin that a TetherTestEnvironment is given."""

from temporalio import workflow


@workflow.defn
class Greeting:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"
