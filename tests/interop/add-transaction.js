// Sends one new transaction to the node whose folder is the working directory, as the
// curriculum's add-transaction.js does (PROTOCOL.md, "Transactions"). A test double written
// from PROTOCOL.md, not the curriculum's code; its defect is kept on purpose: without
// MY_PUBLIC_KEY, `null + undefined` is NaN, the hash library hashes a falsy input as nothing,
// and every such transaction gets the same hash (e3b0c442...b855).
//
// Prints the transaction it sent, as one line of JSON.

'use strict';

const crypto = require('crypto');
const { WebSocket } = require('ws');
const { loadEnv } = require('./env');

loadEnv();

const fromAddress = null;
const toAddress = process.env.MY_PUBLIC_KEY;
const amount = Math.floor(Math.random() * 100) + 1;
const timeStamp = Date.now();
const input = fromAddress + toAddress + amount + timeStamp;
const hash = crypto
  .createHash('sha256')
  .update(input ? String(input) : '')
  .digest('hex');
// JSON.stringify leaves out toAddress when it is undefined.
const transaction = { fromAddress, toAddress, amount, timeStamp, hash };

const socket = new WebSocket(`ws://localhost:${process.env.PORT}`);
socket.on('open', () => {
  socket.send(JSON.stringify({ type: 'TRANSACTION', data: transaction }), () => socket.close());
  console.log(JSON.stringify(transaction));
});
socket.on('error', (error) => {
  console.error(`error: cannot send to ws://localhost:${process.env.PORT}: ${error.message}`);
  process.exitCode = 1;
});
