/* A library the identity test loads with dlopen (not at program start). */
int crtest_identity_fixture(void);
int crtest_identity_fixture(void) { return 42; }
