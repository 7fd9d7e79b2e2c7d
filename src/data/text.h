/* text.h - text data for language models: a plain-text file (or the KJV Bible, "kjv")
 * read line by line, split 90/5/5 by line order, tokenized at word or character level.
 *
 * Lines
 *   A line ends with "\n", "\r\n" (the "\r" is dropped) or the end of the file; a final
 *   line without "\n" still counts. Empty lines count too. With L lines, the first
 *   floor(L*90/100) are the training split, the next floor(L*5/100) validation and the
 *   rest test, so at least 20 lines are needed for every split to have one.
 *   The whole file must be UTF-8 without NUL bytes (at both levels); files above
 *   LB_TEXT_MAX_BYTES are refused.
 *
 * Word level (PTB-like)
 *   ASCII letters are lowercased; a word is a maximal run of [a-z0-9'] and every other
 *   byte (spaces, punctuation, non-ASCII) separates words and is dropped. Each line ends
 *   with <eos>. Vocabulary, from the training split only: <unk> = 0, <eos> = 1, then the
 *   words by count descending, ties by byte order ascending, at most max_vocab of them.
 *   Other words map to <unk>. KJV with max_vocab 10000: 10,002 ids.
 *
 * Character level
 *   Each Unicode code point of a line is a symbol, then "\n" ends the line. Vocabulary:
 *   <unk> = 0, then the code points seen in the training split in ascending order (the
 *   token string is the code point's UTF-8 encoding; "\n" is always there). <unk> is
 *   always present, whether or not validation/test have unseen symbols. KJV: 64 ids
 *   (63 symbols, "\n" included, plus <unk>).
 *
 * KJV ("kjv"): the file $LOWBIT_DATA/kjv.txt, default data/kjv.txt relative to the
 *   working directory, written by scripts/install-deps.sh (31,102 verses one per line,
 *   references stripped): 27,991 / 1,555 / 1,556 lines.
 */
#ifndef LB_DATA_TEXT_H
#define LB_DATA_TEXT_H

#include "lowbit.h"

#include <stddef.h>
#include <stdint.h>

/* The public types and functions (lb_text, lb_vocab, lb_text_load, ...) are in
 * lowbit.h; this header keeps the loader's internal limit. */
#define LB_TEXT_MAX_BYTES ((size_t)1 << 30)

#endif /* LB_DATA_TEXT_H */
