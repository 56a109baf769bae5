#ifndef DACLIP_COMMANDS_H
#define DACLIP_COMMANDS_H
/* Declarations of every subcommand listed in commands.def. */
#define CMD(name, fn, summary) int fn(int argc, char **argv);
#include "train/commands.def"
#undef CMD
#endif
