// The translation unit that tests/CMakeLists.txt's dropq_test_pch target
// compiles its precompiled header with: the headers come from
// target_precompile_headers, so there is nothing to write here.
