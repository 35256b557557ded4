"""The plan: what apply would change, as plain frozen data (model), made by a pure diff of desired against
observed state (diff), with the domains and certificate stacks a change moves or frees (domains)."""
