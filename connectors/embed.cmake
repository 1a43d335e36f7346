# embed.cmake - writes the bytes of IN as `const char smm_lua_script[]` into OUT.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from lua/smm.lua by embed.cmake; do not edit */\n"
                  "const char smm_lua_script[] = {${bytes} 0x00};\n")
