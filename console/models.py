# The console composes the apps; it holds no tables of its own (its migrations only set up roles).
