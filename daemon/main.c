#include <stdio.h>
int main(void) { puts("smoked: under construction"); return 0; }
