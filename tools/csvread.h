/* csvread.h -- a streaming RFC 4180 CSV reader that knows its line numbers.
 * One record at a time, fields owned by the reader, errors by line. */
#ifndef CSVREAD_H
#define CSVREAD_H

typedef struct csv_reader csv_reader;

int csv_open(csv_reader **out, const char *path);  /* "-" = stdin; 0 ok, -1 errno set */
void csv_close(csv_reader *r);                       /* accepts NULL */

/* Read the next record. On success returns the number of fields (>=1) and
 * sets *fields to an array of NUL-terminated strings owned by the reader,
 * valid until the next call (the array is also NULL-terminated). Returns 0
 * at EOF, -1 on malformed input (unterminated quote, a field over 64 KiB, a
 * NUL byte, invalid quoting such as text after a closing quote or a quote
 * inside an unquoted field), on a read error or out of memory, with a
 * message from csv_error(). Blank lines are skipped. Handles RFC 4180:
 * quoted fields with commas, doubled quotes, CRLF or LF line ends (a lone CR
 * also ends a line), newlines inside quotes. A UTF-8 BOM at the start of the
 * file is skipped. After a malformed record the next call continues at the
 * next line; when the error came inside a quoted field (a NUL, an overlong
 * field) that field is first read to its closing quote, so a multi-line
 * field does not produce a second, spurious error. */
int csv_next(csv_reader *r, char ***fields);

long csv_line(const csv_reader *r);   /* 1-based line number where the current/last record started */
const char *csv_error(const csv_reader *r);

#endif /* CSVREAD_H */
