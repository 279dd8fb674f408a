#include <cstdio>
int main() { std::puts("lathe: under construction"); return 0; }
