// keeps lathe_test_support non-empty
