"""Ways to put ExoArmur in front of an agent framework: each adapter keeps every guarantee."""
